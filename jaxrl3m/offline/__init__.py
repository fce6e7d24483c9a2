"""Offline RL: datasets of the tasks (`dataset`), the policies that collect them (`policies`)."""
