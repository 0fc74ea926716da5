# Import a canary by VERSION:USER_ID,USER_ID,... (or VERSION:COHORT_SEED:USER_ID,... to keep the
# seed it was created with, so the same users stay in each cohort). Refresh then reads progress,
# each engine's stable version and its pre-upgrade snapshot back from the fleet's operations.
terraform import engine_canary.v240 2.4.0:user-0001,user-0002,user-0003,user-0004
