"""What several layers share at run time: user-value checks, thread choice, worker processes and
model replicas, progress bars."""
