"""One router per resource: analyze (uploads), jobs, models, health."""
