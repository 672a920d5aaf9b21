"""``python -m perceptra_storage``: the ``perceptra-storage`` command."""

from .cli import main

raise SystemExit(main())
