"""The data flywheel: raw videos -> scene cuts -> scored candidate clips -> filtered training clips."""
