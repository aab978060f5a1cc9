"""The interoperability suite: our client against authorization servers we did not write."""
