"""Bulk jobs over many CDRs: files rated by the batch path (`batchio`), the same on a Spark
cluster (`spark_engine`), and stored history re-rated under changed tariffs (`rerate`)."""
