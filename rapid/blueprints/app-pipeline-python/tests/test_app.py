"""Unit tests the pipeline's build stage runs: python3 -m unittest discover -s tests"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import app  # noqa: E402


class AppTest(unittest.TestCase):
    def test_greets_the_name(self):
        self.assertEqual(app.handler({"name": "pipeline"}, None), {"message": "Hello, pipeline!"})

    def test_greets_the_world_by_default(self):
        self.assertEqual(app.handler({}, None), {"message": "Hello, world!"})


if __name__ == "__main__":
    unittest.main()
