"""Streamlit glue for the pages: the only package of qcompare that imports streamlit.

`data` caches reads of the state folder and submits specs; `notices` shows outcomes and
errors; `navigation` routes deep links through app.py. Logic lives in the library; this
package only adapts it to Streamlit.
"""
