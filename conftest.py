pytest_plugins = ["aiop.devstack.pytest_plugin"]
