"""Benchmarks of the package's own throughput (each module: ``configure(parser)`` and ``main(args)``)."""
