# Import a rehearsal by its id (GET /v1/engines/{user_id}/rehearsals lists an engine's).
terraform import engine_rehearsal.v3 reh-5f2c0a9e1b7d4c36
