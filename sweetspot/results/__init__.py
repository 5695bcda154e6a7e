"""What a study leaves: exports, teachers, reports, backups and the retention of teacher weights."""
