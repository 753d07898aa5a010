"""Tables, statistics, figures and the HTML template of the study report (stages ``collect``, ``report``)."""
