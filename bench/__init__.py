"""The benchmark: `python bench/run.py` measures, `python bench/table.py` tabulates runs you already made."""
