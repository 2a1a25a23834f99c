"""The Discord front end: slash commands over the gateway service.

``/leaderboard`` (submit, list, show, show-personal, task, template; submissions, download, delete: one's
own) for competitors and ``/admin`` for members holding the admin role. The bot holds no database or SSH
logic: every command calls ``gateway.service.facade.Gateway``, and a submission's message follows its runs
through ``Gateway.follow`` (PostgreSQL LISTEN/NOTIFY), so it works beside workers and the HTTP API in other
processes."""
