# Import a canary by its id. Every apply keeps the canary's record on the control plane (its
# settings, last analysis and each moved engine's stable version and snapshot), and the import
# reads it back: the rollback targets are the ones the canary recorded, never guessed.
terraform import engine_canary.v240 canary-3f9a1c2b7d4e5f60

# The older form, VERSION:USER_ID,... (or VERSION:COHORT_SEED:USER_ID,...), names the same id and
# reads the same record. Only when the control plane holds no record does it fall back to reading
# each engine's stable version from its operation history; every plan then warns what was not
# recovered until an apply writes the record.
terraform import engine_canary.v240 2.4.0:user-0001,user-0002,user-0003,user-0004
