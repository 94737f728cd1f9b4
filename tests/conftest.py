pytest_plugins = ["services", "registry_fixtures"]
