import os

os.environ.setdefault("RAMPARTS_TEST_JWT_SECRET", "test-secret-that-is-at-least-32-bytes-long!!")
os.environ.setdefault("RAMPARTS_TEST_PROVIDER_KEY", "sk-test-provider-key-0000")
