# Import the release of an engine by its user id. previous_version (the destroy rollback
# target) becomes the version the engine runs at import. The next apply takes the engine over
# from any other manager (the plan shows owner changing to this workspace's manager).
terraform import engine_release.user_0042 user-0042
