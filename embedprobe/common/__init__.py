"""What several layers share at run time: user-value checks, classification metrics, thread
choice, worker processes and model replicas, progress bars."""
