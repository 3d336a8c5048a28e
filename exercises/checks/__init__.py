"""The checks, one file per exercise: `python -m pytest exercises -k <name>` runs one of them."""
