-- ListCredits: a bank's credits by receive time (settlement reads each bank's day by it).
CREATE INDEX IF NOT EXISTS credits_by_bank_time ON payment.credits (bank_bin, receive_time, id);
