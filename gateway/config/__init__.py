"""What operators and tasks declare: settings, site files, task folders, zero-config discovery."""
