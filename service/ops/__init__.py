"""What operators read: Prometheus metrics (`metrics`) and the request log (`requestlog`)."""
