DROP TABLE run_profiles;
