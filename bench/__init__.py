"""kpy's benchmarks: `python -m bench.run` (or `make bench`).

Every figure is a ratio against a baseline measured in the same run on the
same etcd (raw etcd calls with the same bytes), so a noisy machine moves
both sides together. See bench/README.md.
"""
