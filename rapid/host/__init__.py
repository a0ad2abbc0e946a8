"""The async layer that carries out what the core decides: functions and their instances."""
