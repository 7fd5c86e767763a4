"""Tests of textkit.core."""

import unittest

from textkit import slugify, word_counts


class WordCountsTest(unittest.TestCase):
    def test_counts_are_case_folded_and_ranked(self):
        text = "The cat and the hat. THE end"
        self.assertEqual(word_counts(text, top=2), [("the", 3), ("and", 1)])

    def test_ties_are_alphabetical(self):
        self.assertEqual(word_counts("b a c"), [("a", 1), ("b", 1), ("c", 1)])

    def test_empty_text_has_no_words(self):
        self.assertEqual(word_counts("  ...  "), [])


class SlugifyTest(unittest.TestCase):
    def test_punctuation_becomes_single_hyphens(self):
        self.assertEqual(slugify("Hello,  World -- again!"), "hello-world-again")

    def test_accents_are_dropped(self):
        self.assertEqual(slugify("Caf\u00e9 D\u00e9j\u00e0 Vu"), "cafe-deja-vu")

    def test_cut_never_ends_in_a_hyphen(self):
        self.assertEqual(slugify("alpha beta gamma", max_length=6), "alpha")

    def test_max_length_must_be_positive(self):
        with self.assertRaises(ValueError):
            slugify("x", max_length=0)


if __name__ == "__main__":
    unittest.main()
