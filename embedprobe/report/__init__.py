"""Result records -> files: results JSON/CSV, Markdown report, heatmaps."""
