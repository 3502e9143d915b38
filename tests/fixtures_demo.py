"""Session fixtures over the built-in demo data (owned by the demo/synth work)."""
