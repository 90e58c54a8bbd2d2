"""(see the follow-up commit)"""
