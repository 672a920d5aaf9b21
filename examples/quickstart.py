"""The README's quick start, run on the local backend in a temporary directory.

Every step prints what it did; the script exits non-zero if any step fails.
Change ``BACKEND`` and ``CONFIG`` (and add credentials) to run it on S3,
MinIO or Azure: nothing else changes.
"""

import tempfile
import urllib.request
from pathlib import Path

from perceptra_storage import StorageNotFoundError, get_storage_adapter

BACKEND = "local"


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        CONFIG = {"base_path": str(Path(workdir) / "storage"), "create_dirs": True}
        data_file = Path(workdir) / "data.csv"
        data_file.write_text("id,name\n1,alpha\n2,beta\n")

        with get_storage_adapter(BACKEND, CONFIG) as adapter:
            print(f"1. adapter:        {adapter!r}")
            print(f"2. test_connection: {adapter.test_connection()}")

            with open(data_file, "rb") as f:
                key = adapter.upload_file(f, "datasets/data.csv", content_type="text/csv",
                                          metadata={"owner": "demo"})
            print(f"3. uploaded:       {key}")

            data = adapter.download_file("datasets/data.csv")
            print(f"4. downloaded:     {len(data)} bytes, first line {data.splitlines()[0]!r}")

            for file in adapter.list_files(prefix="datasets/"):
                print(f"5. listed:         {file.key}: {file.size} bytes")

            info = adapter.get_file_metadata("datasets/data.csv")
            print(f"6. metadata:       {info.content_type}, {info.metadata}, etag {info.etag}")

            url = adapter.generate_presigned_url("datasets/data.csv", expiration=3600)
            with urllib.request.urlopen(url.url) as response:
                fetched = response.read()
            print(f"7. presigned URL:  {url.url} -> {len(fetched)} bytes fetched")
            assert fetched == data

            adapter.delete_file("datasets/data.csv")
            print(f"8. deleted; exists now: {adapter.file_exists('datasets/data.csv')}")

            try:
                adapter.download_file("datasets/data.csv")
            except StorageNotFoundError as exc:
                print(f"9. download after delete raises {type(exc).__name__}: {exc}")
    print("quick start finished")


if __name__ == "__main__":
    main()
