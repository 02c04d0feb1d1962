"""Domain services of the control plane: enrolment, registry pushes, deployments, telemetry."""
