"""Slash-command groups: /leaderboard for competitors, /admin for members with the admin role."""
