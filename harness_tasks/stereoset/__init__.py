"""StereoSet: official-equivalent scoring (SS, LMS, ICAT) for the debias harness."""
