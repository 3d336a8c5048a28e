"""The benchmark: `python -m bench.run` measures beside the peers, `python -m bench.table` tabulates your runs."""
