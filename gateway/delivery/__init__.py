"""Getting filings out and answers back: the dispatcher, its outage guard, acks, callbacks."""
