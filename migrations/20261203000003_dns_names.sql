-- The stable DNS name of a public instance, where its backend gives one (on Kubernetes: its DNS
-- label in the cloud's zone). Connection URIs are built on it; the address stays in host.
ALTER TABLE instances ADD COLUMN dns_name TEXT;
