DROP TABLE site_isolation;
