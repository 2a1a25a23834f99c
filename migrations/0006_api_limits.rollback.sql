DROP TABLE api_stream_leases;
DROP TABLE api_buckets;
