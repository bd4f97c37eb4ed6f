"""One module per chapter: its parameter SCHEMA and its PRESETS (smoke, cpu, paper)."""
