"""One module per backend; each is imported only when its backend is first used."""
