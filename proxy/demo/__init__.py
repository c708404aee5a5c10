"""The offline demo: scenes run in order by runner.py."""
