// Placeholder until the C benchmark lands.
int rmqb_placeholder(void);
