"""The inbound side: CloudEvents, normalizers, and intake from queues and directories.

``cloudevents`` wraps the SDK (the one file an SDK change touches); ``mapping`` is the
declarative normalizer (pure); ``normalizers`` loads and runs a source's normalizer;
``intake`` turns one inbound event into filings or a rejected-event row; ``amqp`` and
``directory`` are the long-running consumers ``Gateway.run`` starts.
"""
