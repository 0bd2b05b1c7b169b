"""The six roles. Each reads its role file and stage contracts, asks its policy, calls skills and
records what it did; heavy logic lives in skills."""
