"""The Wyoming door: the listener, one handler per connection, the event reader, zeroconf."""
