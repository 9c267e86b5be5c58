"""The HTTP API: the app (`app`), one router module per resource, the error envelope
(`errors`), keys and roles (`deps`), admission control, and the agents' console."""
