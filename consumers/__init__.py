"""Edge: the verifying stream processor and the two engines that feed it (aiokafka, faust)."""
