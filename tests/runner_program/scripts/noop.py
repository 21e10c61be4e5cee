"""Agent: reads the task and changes nothing."""

print("nothing to change")
