"""What the service learns from its own work: concordance, RADPEER, turnaround, volume and workload."""
