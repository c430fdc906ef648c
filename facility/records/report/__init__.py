"""The auditor's HTML report: ``stats`` computes, ``charts`` draws, ``html`` lays out."""
