"""The attnmodel command line."""
