"""Channels: one module per way of reaching people, all behind `base.Channel`."""
