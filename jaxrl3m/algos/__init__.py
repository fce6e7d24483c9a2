"""Learning algorithms: pure loss functions and jittable train builders."""
