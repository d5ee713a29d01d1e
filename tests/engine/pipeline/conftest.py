"""Pipeline engine tests need no servers: sources are inline rows or in-test readers."""
