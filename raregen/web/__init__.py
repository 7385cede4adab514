"""Web plumbing shared by both components: error handlers, health and metrics."""
